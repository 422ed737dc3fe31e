"""links: an example storekeeper app serving a JSON API of saved links at /apps/links/links."""
