"""Where result files land: the protocols a download calls (base.py), the local disk
(local.py, localfs.py), and an S3-compatible bucket (objectstore.py, spooling through the
local sink; objectprobe.py checks the bucket first, objectlinks.py presigns links to it)."""
