"""The test suite: a package mirroring repvgg_mm/ (test_<package>/) and tools/ (test_tools/)."""
