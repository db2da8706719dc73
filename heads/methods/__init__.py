"""The methods: the `Method` interface, each `--aux` method's module and the registry of them."""
