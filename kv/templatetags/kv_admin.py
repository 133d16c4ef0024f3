"""Template filters of the admin: `{{ moment|admin_time }}` for datetimes and epoch milliseconds."""

from django import template

from kvsite.admin_site import admin_time as _admin_time

register = template.Library()


@register.filter
def admin_time(moment) -> str:
    return _admin_time(moment)
