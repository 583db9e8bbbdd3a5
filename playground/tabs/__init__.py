"""The app's tabs: each module defines TITLE, ID and build(demo), called inside ``with gr.Tab(TITLE, id=ID):``."""
