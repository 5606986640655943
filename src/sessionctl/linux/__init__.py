"""Readers and writers of Linux kernel and libc interfaces (/proc, utmp, ttys, pidfds)."""
