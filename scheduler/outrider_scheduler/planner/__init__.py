"""The planner: scales InferenceDeployments ahead of the forecast and answers surges within seconds.

Layers, from pure to I/O:

- :mod:`.capacity` and :mod:`.profile`: requests/s one replica serves at each batch size within
  the p99 target, from a measured profile corrected by what the pods' own statistics show;
- :mod:`.signals`: per-pod load rates from successive ``/v2/admin/load`` samples;
- :mod:`.core`: the pure decision function (observations in, a :class:`~.decisions.Plan` of pod
  operations, pool targets and reported actions out) that a trace-replay simulator can drive; its
  steps are in :mod:`.core_sizing`, :mod:`.core_batching`, :mod:`.core_scale_up`,
  :mod:`.core_scale_down` and :mod:`.core_pools`, its data types in :mod:`.decisions`;
- :mod:`.runtime_client`, :mod:`.cluster`, :mod:`.actuator`, :mod:`.publishing`: runtime admin
  calls, the watch caches, executing a plan and writing status, Events and metrics;
- :mod:`.service` and :mod:`.leader`: the loop, under a Lease so two replicas never both act; it
  builds views in :mod:`.sampling` and reports in :mod:`.reporting`, with :mod:`.settings` and the
  state it keeps in :mod:`.state`.
"""
