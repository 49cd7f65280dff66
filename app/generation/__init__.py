"""A generation in any mode (wait or streaming): what drives the provider and how it ends.

`relay.Relay` runs one generation (first-token deadline, retries before the first token with
`backoff`, usage, the lifecycle log lines, the inter-token `gaps`) and tells a listener (a
stream's producer; nobody in wait mode); its `outcome.Outcome` says how it ended. `cancel` is
how a generation is stopped from outside; `waiting` runs wait-mode generations, cancelled when
their client leaves.
"""
