"""The demo (``make demo`` = ``python -m demo``): one town end to end (``municipality``), then a second town across the border (``federation``).

Not part of the product: it drives the product's own commands and services
over loopback, with generated data (``synthetic``).
"""
