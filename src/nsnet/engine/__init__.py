"""Running labs: the journal, the running-lab directory, observing the kernel, applying plans, up and down."""
