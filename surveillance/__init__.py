"""Statistical surveillance of hospital quality ("smoke alarms").

Screens acute hospital trusts against indicators with overdispersion-adjusted funnel plots,
risk-adjusted CUSUM charts and a priority banding model. See README.md and docs/.
"""

__version__ = "0.1.0"
