"""The speaker (DESIGN §2): one per node; decides what this node announces and drives the
announcers. Orchestration only: rules live in planner/, I/O in kube/ and announce/."""
