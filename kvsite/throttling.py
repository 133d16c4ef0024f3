"""Request rate limits per user and per anonymous client (DRF throttles over the node's Redis)."""

from django.conf import settings
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle


class AnonThrottle(AnonRateThrottle):
    """Requests without a credential, counted per client address (KVS_THROTTLE_ANON)."""

    def get_rate(self):
        return settings.KVS_THROTTLE_ANON or None


class UserThrottle(UserRateThrottle):
    """Requests with a credential, counted per user (KVS_THROTTLE_USER)."""

    def get_rate(self):
        return settings.KVS_THROTTLE_USER or None
