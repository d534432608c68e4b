"""A result URL to its place, one question per module:

- attempt.py   the Downloader: tries, redirects, backoff, what a failure means for the next try;
- head.py      what an answer's head means: status, range, validator, type, coding, Retry-After;
- stream.py    the body into the result sink: batches, checks as it comes, a stall cut, salvage;
- video.py     is it really a video (MP4/MOV boxes, WebM), and where a cut one ends;
- codings.py   a gzip or deflate body a CDN sent anyway, decoded as a stream.

The result sink (adapters/sinks/) is the only way to a file or an object.
"""
