"""BGP announcements through ExaBGP, run as a supervised child process.

`config` renders ExaBGP's configuration (pure), `engine` supervises ExaBGP (whose API
program is OpenBSD netcat, a pipe to our unix socket) and speaks its text API, `announcer`
turns a planner BgpPlan into sessions and routes.
"""
