"""One date format on every admin page: 2026-12-07 14:05:30 UTC (Django's own fields included).

Django's English formats ("Dec. 7, 2026, 4 p.m.") beside the recovery pages' own ISO-like
times read as two clocks; FORMAT_MODULE_PATH puts this file first for English.
"""

DATE_FORMAT = "Y-m-d"
DATETIME_FORMAT = "Y-m-d H:i:s T"
SHORT_DATE_FORMAT = "Y-m-d"
SHORT_DATETIME_FORMAT = "Y-m-d H:i:s T"
TIME_FORMAT = "H:i:s"
DATE_INPUT_FORMATS = ["%Y-%m-%d"]
DATETIME_INPUT_FORMATS = ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"]
