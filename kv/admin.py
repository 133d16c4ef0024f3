from django.contrib import admin

from .models import Entry


@admin.register(Entry)
class EntryAdmin(admin.ModelAdmin):
    list_display = ("key", "deleted", "owner", "group", "mode", "revision")
    search_fields = ("key",)
    readonly_fields = [f.name for f in Entry._meta.fields]
