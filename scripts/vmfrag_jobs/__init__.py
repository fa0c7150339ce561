"""The jobs behind scripts/vmfrag: bootstrap, build flavours, test, ci."""
