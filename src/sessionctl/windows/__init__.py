"""Windows interfaces (the WTS API and friends through ctypes); imported only on Windows.

``wtsapi`` declares the functions and structures as Microsoft documents them and loads
the DLLs; ``wts`` turns their raw results into Python values; ``processes`` reads per-process
figures through psutil. Tests on Linux feed ``wts`` a constructed API object instead of the
DLLs (see tests/unit/test_windows_backend.py).
"""
