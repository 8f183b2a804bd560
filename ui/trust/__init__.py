"""The "Which measure to trust?" page: ReSi's six grounding tests (Klabunde et al., ICLR 2025) as a
sortable scorecard of every measure (:mod:`.card`), computed as background jobs through bounded
stores (:mod:`.compute`), and the user's own group of models run through the tests that need only
a group (:mod:`.own`)."""
