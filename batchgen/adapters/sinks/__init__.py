"""Where result files land: the protocols a download calls (base.py) and the local disk as
their one implementation today (local.py, localfs.py). An object-store sink is one new module
beside them, handed to the Downloader as `sinks=`."""
