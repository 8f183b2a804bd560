"""What the pitfall pages compute and draw, one module per page (Davari et al.'s pitfalls, the estimators, and the later papers')."""
