"""Did the coaching work: per coached agent, event and figure, the change after a coaching
event against the change of uncoached agents over the same dates (docs/METRICS.md, "Coaching
outcomes"). Pure functions over frames; the store reads and writes the tables.

options.py   the [coaching] settings
records.py   CoachingEvent, CoachingResult: the rows of coaching_events and coaching_results
windows.py   before and after windows of each event; which agents are the comparison
stats.py     difference in differences, cluster bootstrap interval, effect size, verdict
outcomes.py  the outcome rows from every agent's call figures and the events
"""
