"""The stack's building blocks: one `pulumi.ComponentResource` per concern, each with typed Args."""
