from .memory import quiet_gc

quiet_gc()  # before the bulk of the imports: everything they create lives for the whole run

from .cli import main  # noqa: E402

main()
