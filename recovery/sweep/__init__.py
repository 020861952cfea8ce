"""The sweep's pure core and its reports: no ORM, no clock, no files."""
