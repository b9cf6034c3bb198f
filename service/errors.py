"""The refusals of either service: one exception class per kind of refusal.

A module anywhere in a service raises a :class:`Refusal` subclass that names
the refusal (``raise SourceOwned("…")``) with a Japanese message, without
knowing about HTTP. Each class carries its HTTP ``status`` and its stable
machine-readable ``code`` as class attributes, so a refusal's status and code
are declared once, next to its name, and every raise of it agrees. Each
service's app turns every ``Refusal`` into its HTTP answer in one exception
handler (``gateway/api/main.py``, ``escrow/api/app.py``; the web UIs in their
``web/app.py``), which is also where the refusal is logged.

The three-argument form ``GatewayError(status, code, detail)`` is still
accepted: ``service.accounts`` builds the shared account refusals with it for
whichever service it serves (#11); everywhere else a structure test
(``tests/structure/test_named_refusals.py``) refuses it.
"""

from __future__ import annotations

from typing import ClassVar


class Refusal(Exception):
    """A request or command a service refuses; ``detail`` never contains identity data or secrets."""

    #: the HTTP status this refusal is answered with
    status: ClassVar[int] = 400
    #: the stable machine-readable code clients and tests match on
    code: ClassVar[str] = "refused"

    def __init__(self, *args: object) -> None:
        """``Refusal(detail)`` for a named subclass, or ``Refusal(status, code, detail)``.

        ``detail`` is Japanese, for staff.
        """
        if len(args) == 1:
            (detail,) = args
        elif len(args) == 3:
            status, code, detail = args
            self.status = int(status)  # type: ignore[misc]
            self.code = str(code)  # type: ignore[misc]
        else:
            raise TypeError("Refusal(detail) or Refusal(status, code, detail)")
        super().__init__(detail)
        self.detail = str(detail)
        #: set once the refusal is in the service's audit log (the escrow logs each exactly once)
        self.logged = False
