"""What builders measure on a device, torch-free where it can be: energy (:mod:`.energy`)."""
