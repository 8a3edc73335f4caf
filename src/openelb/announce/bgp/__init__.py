"""BGP announcements through ExaBGP, run as a supervised child process.

`config` renders ExaBGP's configuration (pure), `bridge` is the tiny program ExaBGP
runs to reach us, `engine` supervises ExaBGP and speaks its text API, `announcer`
turns a planner BgpPlan into sessions and routes.
"""
