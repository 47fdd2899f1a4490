"""The ``dgsearch`` commands, one module per job; ``cli/app.py`` registers them in the order ``--help`` lists."""
