"""What a generation reserves, spends and owes, in one place: its account (made at admission,
carried down to the relay, settled once it ends), its key's ticket, money in budgets, what
attempts cost, and what is reserved before a generation starts."""
