"""Where a page's data comes from: the sidebar's representation, uploads and launch files, the registry of networks, your own models, and the limits on all of them."""
