"""The app's frame: the page list, the error boundary and URL state, shared widgets, figure styles and references."""
