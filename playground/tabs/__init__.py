"""The app's tabs, in page order. Each module holds one tab's layout and handlers together and defines:

- ``TITLE``: the tab's label on the page, and ``ID``: its id (``gr.Tab(TITLE, id=ID)``);
- ``build(demo)``: called inside the tab, creates its components and events (``demo`` for on-open ``demo.load``).

A new tab is a new module here and one entry in ``TABS``.
"""

from . import inpaint, lab, math, sample, schedules, vae, walks

TABS = (sample, schedules, vae, walks, inpaint, lab, math)
