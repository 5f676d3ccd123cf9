"""The sandbox's AWS emulator: moto in server mode behind a journal and fault-injection layer,
with the project's patches for what moto lacks (see sandbox/README.md, "AWS emulator")."""
