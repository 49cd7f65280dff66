"""Budget alerts: when a key's (or an end user's) spend, with what its running generations
reserved, reaches a threshold of a budget (BUDGET_ALERT_THRESHOLDS), one signed JSON POST to
BUDGET_ALERT_WEBHOOK per threshold and period (`thresholds`: which are reached, and marked once
for every worker and instance), sent in the background with retries (`webhook`), never holding a
request."""
