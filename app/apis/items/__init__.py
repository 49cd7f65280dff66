"""OpenAI's items, which the Responses and Conversations families share: an input's items
checked (`input`, with their content `parts`, `tools` and `formats`, and the `compaction` item),
listed and paged as OpenAI lists them (`listing`), an `item_reference` resolved (`references`),
and a client's kept conversation's items (`kept`). Not a family: it registers nothing."""
