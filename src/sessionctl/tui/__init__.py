"""The interactive Users screen (`sessionctl top`), built with Textual.

It uses only the public API: sessions and the usage sampler to show, send_message,
logoff, schedule_logoff and end_process to act.
"""
