"""``outrider simulate``: a trace-replay twin comparing the planner with HPA, KPA, a Dynamo-style
planner, static peak and an oracle on SLO minutes and GPU-hours (see ``docs/simulate.md``).

- :mod:`.servers`: batched replicas as a fluid queue (the measured capacity profile);
- :mod:`.fleet`: pods, their states and the measured timings of each change;
- :mod:`.policies`: the alternatives, each modelled on its documentation;
- :mod:`.outrider_policy`: the planner's own decision core driven with simulated pods;
- :mod:`.runner`: scaling the trace, the forecaster's walk-forward, the replay and the scores.
"""
