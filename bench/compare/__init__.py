"""Side-by-side benchmarks of pgautomator, pg_cron and pgAgent (issue 6).

One run measures the same workloads on each system one after the other, on
the same cluster, so that the figures compare as ratios on a noisy machine.
"""
