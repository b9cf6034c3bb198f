"""``python -m demo``: the demo that ``make demo`` runs (:func:`demo.municipality.main`)."""

from demo.municipality import main

main()
