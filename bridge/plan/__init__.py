"""`bridge plan`: a capacity plan from the constants the project's bench
measured (constants.json beside this module, rewritten by `make bench`), shown
beside the seed's rule-of-thumb formula and the difference."""
