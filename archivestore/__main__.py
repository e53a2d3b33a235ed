import gc

# The same setting as cli.main, made before the imports: everything they create lives for the
# whole run, so no collection needs to scan it meanwhile
gc.set_threshold(50_000, 50, 100)

from .cli import main  # noqa: E402

main()
