"""Django settings for a kvsite node. Every knob is read from the environment (or `.env`)."""

import hashlib
import hmac
import os
import secrets
from datetime import timedelta
from pathlib import Path

from backups.schedule import schedule_parse

from .env import BASE_DIR, env

# --- Node identity and storage -------------------------------------------------------------------

# Where this node keeps its state (SQLite database, generated secrets).
KVS_DATA_DIR = Path(env.str("KVS_DATA_DIR", default=str(BASE_DIR / "var")))
KVS_DATA_DIR.mkdir(parents=True, exist_ok=True)

# A stable name for this node; empty means "generate one on first boot and keep it".
KVS_NODE_ID = env.str("KVS_NODE_ID", default="")
# The URL peers use to reach this node.
KVS_ADVERTISE_URL = env.str("KVS_ADVERTISE_URL", default="http://127.0.0.1:8000")
# Seed URLs to join through (comma separated); none means this node starts a cluster.
KVS_SEEDS = env.list("KVS_SEEDS", default=[])


def _secret_from_file(name: str) -> str:
    """A random secret persisted in the data directory, for single-machine setups."""
    path = KVS_DATA_DIR / name
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


# Shared by every node of a cluster: signs node-to-node requests and (derived) JWTs.
KVS_CLUSTER_SECRET = env.str("KVS_CLUSTER_SECRET", default="") or _secret_from_file(
    "cluster_secret"
)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="") or KVS_CLUSTER_SECRET

# --- Access --------------------------------------------------------------------------------------

# Off: every request may do everything (a private, trusted network only).
KVS_AUTH_ENABLED = env.bool("KVS_AUTH_ENABLED", default=True)
# Let requests without a credential read (GET/HEAD/list/history) keys.
KVS_ALLOW_ANONYMOUS_READ = env.bool("KVS_ALLOW_ANONYMOUS_READ", default=False)
# Let requests without a credential create and replace keys (never delete).
KVS_ALLOW_ANONYMOUS_WRITE = env.bool("KVS_ALLOW_ANONYMOUS_WRITE", default=False)
# Refuse client writes (403); replication still applies.
KVS_READ_ONLY = env.bool("KVS_READ_ONLY", default=False)
# If set, the root token created on first boot is exactly this string.
KVS_BOOTSTRAP_TOKEN = env.str("KVS_BOOTSTRAP_TOKEN", default="")
# How long (seconds) a process trusts a token it has verified before reading it again: revocations
# made on another process or node take effect within this time. 0 checks the database every time.
# Open websockets are checked again this often too (at most every 0.1 s; one check per credential
# and web worker, however many sockets share it): a shorter time closes revoked sockets sooner.
KVS_TOKEN_CACHE_SECONDS = env.float("KVS_TOKEN_CACHE_SECONDS", default=1.0)
# How long (seconds) a process reuses ACL rules and schemas it has read; changes made on other
# processes or nodes apply within this time. 0 reads them on every write.
KVS_POLICY_CACHE_SECONDS = env.float("KVS_POLICY_CACHE_SECONDS", default=1.0)
# Request rate limits, as "N/second", "N/minute", "N/hour" or "N/day"; empty means no limit.
# Over the limit a request gets 429 with Retry-After. Counters live in the node's Redis, so each
# node limits on its own. Anonymous clients are counted by address, others by user.
KVS_THROTTLE_ANON = env.str("KVS_THROTTLE_ANON", default="50/second")
KVS_THROTTLE_USER = env.str("KVS_THROTTLE_USER", default="")
# Failed password logins allowed per username, and failed logins and JWT refreshes per client
# address, in each fixed window ("N/minute" etc.; empty: no limit). An attempt is counted before
# the password is checked and taken back if it succeeds, so past a limit (429 with Retry-After
# until the window ends) a guess costs no password hash, and a user's own logins never count.
# Per address 20/minute: one client's guesses use at most one hash (~0.1-0.2 s of a core) every
# 3 s. Per username 5/minute: a user who mistypes waits at most a minute; an attacker who keeps
# guessing keeps that user from logging in with a password on that node only while they keep
# at it, and API tokens and refresh JWTs still work. Counters live in each node's Redis.
KVS_LOGIN_THROTTLE_USER = env.str("KVS_LOGIN_THROTTLE_USER", default="5/minute")
KVS_LOGIN_THROTTLE_ADDR = env.str("KVS_LOGIN_THROTTLE_ADDR", default="20/minute")
# Mode given to new keys when no ACL rule covers them (owner cdwr, group --wr, others ---r).
KVS_DEFAULT_MODE = env.str("KVS_DEFAULT_MODE", default="cdwr--wr---r")
# Largest JSON Schema a prefix may have (bytes of JSON; larger: 400 when stored). Larger schemas
# take longer to check when stored and to build into validators.
KVS_SCHEMA_MAX_BYTES = env.int("KVS_SCHEMA_MAX_BYTES", default=64 * 1024)
# How much work checking a value against the schemas of its prefixes may take: 10,000 steps plus
# this many per KiB of the value. A step is one keyword applied to one part of the value (about
# 2.5 us); a pattern search costs its text's length times its compiled size / 500. A value whose
# check needs more is refused (400 schema_too_costly), so no value holds a web worker for long:
# a small one for a few tens of ms, a 1 MiB one for about 2.5 s. Legitimate checks take a few
# steps per item (an array of small objects checked by a typical schema: about 0.4 steps per
# byte); higher: elaborate schemas may check denser values; lower: a bad schema burns less.
KVS_SCHEMA_STEPS_PER_KIB = env.int("KVS_SCHEMA_STEPS_PER_KIB", default=1024)

# --- JWT login (accounts; djangorestframework-simplejwt) -----------------------------------------

# Signs and verifies login JWTs (HS256); every node of a cluster must share it. Empty: derived from
# KVS_CLUSTER_SECRET, so nodes accept each other's JWTs with no extra secret to distribute
# (changing either key logs every JWT holder out).
KVS_JWT_SIGNING_KEY = (
    env.str("KVS_JWT_SIGNING_KEY", default="")
    or hmac.new(KVS_CLUSTER_SECRET.encode(), b"kvsite-jwt", hashlib.sha256).hexdigest()
)
# Lifetime of an access JWT (seconds). Longer: fewer refreshes; shorter: a leaked access JWT is
# useful for less time (a JWT cannot be revoked; deactivating its user or a new password can).
KVS_JWT_ACCESS_SECONDS = env.int("KVS_JWT_ACCESS_SECONDS", default=900)
# Lifetime of a refresh JWT (seconds): how long a login lasts without asking for the password.
KVS_JWT_REFRESH_SECONDS = env.int("KVS_JWT_REFRESH_SECONDS", default=86400)
SIMPLE_JWT = {
    "ALGORITHM": "HS256",
    "SIGNING_KEY": KVS_JWT_SIGNING_KEY,
    "ACCESS_TOKEN_LIFETIME": timedelta(seconds=KVS_JWT_ACCESS_SECONDS),
    "REFRESH_TOKEN_LIFETIME": timedelta(seconds=KVS_JWT_REFRESH_SECONDS),
    "USER_ID_FIELD": "username",  # node-independent, unlike the database id
    "USER_ID_CLAIM": "sub",
}

# --- End of JWT login ----------------------------------------------------------------------------

# --- Data model ----------------------------------------------------------------------------------

# How many previous versions of each key are kept (more: longer history, larger database).
KVS_HISTORY_DEPTH = env.int("KVS_HISTORY_DEPTH", default=3)
# Most client writes one group commit applies in one transaction (larger: fewer commits under
# load, but the writes at the end of a batch wait for all the ones before; see docs/storage.md).
KVS_GROUP_COMMIT_MAX = env.int("KVS_GROUP_COMMIT_MAX", default=256)
# Most compares plus ops (of both branches) in one POST /api/v1/txn (more: 400).
KVS_TXN_MAX_OPS = env.int("KVS_TXN_MAX_OPS", default=128)
# Largest accepted value, in bytes of JSON (larger: 413).
KVS_MAX_VALUE_BYTES = env.int("KVS_MAX_VALUE_BYTES", default=1024 * 1024)
# How many levels arrays and objects may nest in a request body or websocket frame (deeper: 400).
# Deeper documents are rare in real data and cost stack: schema checking recurses per level, and
# orjson encodes at most 254 levels (what clients send is wrapped in a few levels of our own).
KVS_MAX_JSON_DEPTH = env.int("KVS_MAX_JSON_DEPTH", default=64)
# How long tombstones are kept (seconds). A node offline longer than this must rejoin empty.
KVS_TOMBSTONE_TTL = env.int("KVS_TOMBSTONE_TTL", default=7 * 24 * 3600)
# How often (seconds) the expiry task turns expired keys into tombstones.
KVS_EXPIRY_INTERVAL = env.float("KVS_EXPIRY_INTERVAL", default=1.0)
# How often (seconds) purged tombstones are looked for.
KVS_PURGE_INTERVAL = env.float("KVS_PURGE_INTERVAL", default=600.0)
# Number of Merkle leaves (key-hash buckets); every node of a cluster must use the same value.
KVS_MERKLE_BUCKETS = 4096

# --- Backups (backups/) --------------------------------------------------------------------------

# Where this node keeps its backup files (scheduled, API and admin ones). Put it on another disk
# than the database, or copy the files off the machine: a backup beside its database is lost
# with it.
KVS_BACKUP_DIR = Path(env.str("KVS_BACKUP_DIR", default=str(KVS_DATA_DIR / "backups")))
# When Celery beat takes a backup: cron syntax (minute hour day-of-month month day-of-week, UTC);
# empty: never. More often: less to catch up by anti-entropy after a restore, and less lost when
# the whole cluster is; each backup reads the whole store (about 1 s per 100,000 keys).
KVS_BACKUP_SCHEDULE = env.str("KVS_BACKUP_SCHEDULE", default="0 0 * * *")
# Days a backup file is kept (by its modification time); older ones are deleted after each
# scheduled backup. 0: never deleted. Longer: more disk, and older states one can go back to.
KVS_BACKUP_RETENTION_DAYS = env.float("KVS_BACKUP_RETENTION_DAYS", default=7.0)

# --- End of Backups ------------------------------------------------------------------------------

# --- Audit trail (audit/) ------------------------------------------------------------------------

# The key of this node's audit chain (HMAC-SHA256): a file outside the database, created (mode
# 0600) on first use. Whoever can edit the database but not read this file cannot forge events.
# Keep it with the node's data directory (and its backups): without it the trail cannot be
# verified, and a new key starts a chain that verifies only from the next event on.
KVS_AUDIT_KEY_FILE = Path(env.str("KVS_AUDIT_KEY_FILE", default=str(KVS_DATA_DIR / "audit_key")))
# Days audit events are kept; older ones are pruned hourly, a whole oldest stretch at a time,
# and the chain still verifies from the last pruned event (its anchor). 0: keep everything.
# Longer: more history to investigate, a larger database and a longer verify.
KVS_AUDIT_RETENTION_DAYS = env.float("KVS_AUDIT_RETENTION_DAYS", default=0.0)

# --- End of Audit trail --------------------------------------------------------------------------

# --- Cluster -------------------------------------------------------------------------------------

# Seconds between gossip rounds. Shorter: faster failure detection and convergence, but more
# requests and one more database write per round on every node.
KVS_GOSSIP_INTERVAL = env.float("KVS_GOSSIP_INTERVAL", default=1.0)
# Peers a round exchanges member tables with. More: news spreads in fewer rounds, more traffic.
KVS_GOSSIP_FANOUT = env.int("KVS_GOSSIP_FANOUT", default=2)
# Chance per round of also contacting one dead member, so a node that comes back learns it was
# declared dead and refutes it. Higher: faster recovery, more requests to hosts that are gone.
KVS_GOSSIP_PROBE_DEAD = env.float("KVS_GOSSIP_PROBE_DEAD", default=0.25)
# Seconds a node-to-node request may take. Shorter: a hung peer delays a round less, but a busy
# peer is more often treated as silent. Keep it at or below the gossip interval.
KVS_GOSSIP_TIMEOUT = env.float("KVS_GOSSIP_TIMEOUT", default=1.0)
# Seconds without news of a member (directly or a fresher heartbeat through gossip) before it is
# suspect, and before it is dead. With a 1 s interval a killed node is suspect after ~3 s and dead
# after ~5-6 s. Shorter: faster detection, but a paused or overloaded node is accused more often
# (it refutes at once, but the accusation is gossiped). Must exceed a few intervals: news of a
# member takes O(log n) rounds to reach everyone. These hold up to 10 live members; beyond, both
# are multiplied by log10(members) (x2 at 100, x3 at 1,000), as memberlist scales its suspicion.
KVS_SUSPECT_AFTER = env.float("KVS_SUSPECT_AFTER", default=2.5)
KVS_DEAD_AFTER = env.float("KVS_DEAD_AFTER", default=5.0)
# Seconds a member stays in the table once dead or left before it is forgotten (0: never). Like
# Consul's reconnect_timeout: long enough for a host to be repaired and come back as the same
# member; a member forgotten sooner that comes back simply joins again.
KVS_REAP_AFTER = env.float("KVS_REAP_AFTER", default=72 * 3600)
# Seconds a signed node-to-node request stays valid (and its signature is remembered to refuse
# replays). Longer: tolerates more clock skew between nodes, but a captured request can be
# replayed against another node for longer.
KVS_SIGNATURE_WINDOW = env.float("KVS_SIGNATURE_WINDOW", default=30.0)

# Replication. Pushes start right after each commit (debounced per process) and on a sweep every
# KVS_PUSH_INTERVAL seconds; a batch holds at most KVS_PUSH_BATCH versions and ~BATCH_BYTES bytes.
# KVS_PUSH_ON_COMMIT=false: no push after commits (changes wait for the sweep). KVS_PUSH_INTERVAL=0:
# no sweep (a push lost with its process waits for the next commit, or for anti-entropy). Both:
# push is off, and only anti-entropy replicates, a change per KVS_ANTI_ENTROPY_INTERVAL and peer.
KVS_PUSH_ON_COMMIT = env.bool("KVS_PUSH_ON_COMMIT", default=True)
KVS_PUSH_INTERVAL = env.float("KVS_PUSH_INTERVAL", default=1.0)
KVS_PUSH_BATCH = env.int("KVS_PUSH_BATCH", default=500)
KVS_PUSH_BATCH_BYTES = env.int("KVS_PUSH_BATCH_BYTES", default=4 * 1024 * 1024)
# Bytes from which a body between nodes (replication, anti-entropy, gossip) goes zstd-compressed
# (cluster/compression.py). Lower: fewer bytes on the wire, more CPU per small message; 0: all.
KVS_COMPRESS_MIN_BYTES = env.int("KVS_COMPRESS_MIN_BYTES", default=4096)
# Seconds between Merkle anti-entropy rounds with a random alive peer. Shorter: divergence (lost
# pushes, a peer that was down) is repaired sooner; each round with equal trees costs one request.
KVS_ANTI_ENTROPY_INTERVAL = env.float("KVS_ANTI_ENTROPY_INTERVAL", default=3.0)
# Seconds a replication or anti-entropy request may take (they carry more than gossip does).
KVS_REPLICATION_TIMEOUT = env.float("KVS_REPLICATION_TIMEOUT", default=15.0)

# --- End of Cluster ------------------------------------------------------------------------------

# --- Metrics (ops/) ------------------------------------------------------------------------------

# Whether GET /metrics answers anyone (as etcd's does). Off: only a credential with admin:cluster
# (401 without one, 403 without the scope). Metrics name no keys, values or users, but they show
# how busy the node is and who its peers are.
KVS_METRICS_PUBLIC = env.bool("KVS_METRICS_PUBLIC", default=True)
# Not a knob: where every process of this node keeps its figures (prometheus_client's multiprocess
# mode; cleared when the node starts, see ops/multiproc.py).
KVS_METRICS_DIR = KVS_DATA_DIR / "metrics"

# --- End of Metrics ------------------------------------------------------------------------------

# --- Django --------------------------------------------------------------------------------------

DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["*"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "kvsite.apps.KvAdminConfig",  # Django's admin, with kvsite's site
    "kvsite.apps.KvAuthConfig",  # Django's auth; its groups shown under Accounts
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "accounts",
    "kv",
    "cluster",
    "ops",
    "backups",
    "audit",
]

MIDDLEWARE = [
    "ops.middleware.HttpMetricsMiddleware",  # first: times and counts every answer
    "kvsite.middleware.Utf8PathMiddleware",  # before anything reads a path decoded with loss
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "audit.context.AuditContextMiddleware",  # after auth: audit events name the request's user
    "kvsite.middleware.LazyMessageMiddleware",  # Django's, storage made only when used
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "kvsite.urls"
APPEND_SLASH = False
ASGI_APPLICATION = "kvsite.asgi.application"
AUTH_USER_MODEL = "accounts.User"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# SQLite's write-ahead log is copied into the database by a thread of each writing process
# (kv/checkpoint.py), at most once per KVS_SQLITE_CHECKPOINT_DELAY seconds, instead of inside the
# commit that fills it past 1,000 pages while every other writer waits. Once the log holds
# KVS_SQLITE_WAL_MAX_FRAMES pages (4 KiB each) under writes that never pause, that thread pauses
# the writers for a last short copy so that the log can start over. A negative delay turns the
# thread off: SQLite then checkpoints inside commits, as it does by default.
KVS_SQLITE_CHECKPOINT_DELAY = env.float("KVS_SQLITE_CHECKPOINT_DELAY", default=0.2)
KVS_SQLITE_WAL_MAX_FRAMES = env.int("KVS_SQLITE_WAL_MAX_FRAMES", default=8192)

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{KVS_DATA_DIR / 'kvsite.sqlite3'}")
}
ON_SQLITE = DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
if ON_SQLITE:
    # WAL lets readers run beside the writer; IMMEDIATE takes the write lock at BEGIN so two
    # writers queue on busy_timeout instead of failing with "database is locked" mid-transaction.
    # synchronous=NORMAL: a commit is not synced on its own; checkpoints sync (see above). SQLite's
    # automatic checkpoint stays as a last resort, far beyond what the checkpointer lets the log
    # reach; a log left larger than 64 MiB is cut back when it starts over.
    _autocheckpoint = 4 * KVS_SQLITE_WAL_MAX_FRAMES if KVS_SQLITE_CHECKPOINT_DELAY >= 0 else 1000
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
        f"PRAGMA wal_autocheckpoint={_autocheckpoint}; PRAGMA journal_size_limit=67108864;",
    }
# Keep database connections across requests (the HTTP threads are long-lived; see kvsite/asgi.py).
DATABASES["default"]["CONN_MAX_AGE"] = env.int("KVS_CONN_MAX_AGE", default=300)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Threads per web worker process that run HTTP requests (0: Django's own ASGI handler, which
# starts a thread and a database connection per request). More threads overlap database waits;
# Python code itself runs one thread at a time per process.
KVS_HTTP_THREADS = env.int("KVS_HTTP_THREADS", default=8)
# Whether single-key reads (GET/HEAD /api/v1/kv/{key}) and /health run on the web worker's event
# loop thread rather than on one of those threads: no hand-off between threads, about a third
# less CPU per read (docs/performance.md). The loop does nothing else meanwhile, so it is on by
# default only on SQLite, whose reads never wait on a lock or a network; on PostgreSQL a read
# waits for the server, and a slow server would stall the worker's websockets too.
KVS_HTTP_INLINE_READS = env.bool("KVS_HTTP_INLINE_READS", default=ON_SQLITE)

# --- HTTP edge (kvsite/edge.py, kvsite/server.py) ------------------------------------------------

# Seconds a request's body may take to arrive whole, from the end of its headers; later: 408 and
# the connection closed. Bodies are read on the event loop before a request takes an HTTP
# thread, so a slow one holds no thread, only the bytes it has sent (at most
# DATA_UPLOAD_MAX_MEMORY_SIZE). Longer: slower links can still send full-size bodies (at 20 s
# one needs about 250 KB/s); shorter: a stalled body holds its memory and socket for less time.
KVS_HTTP_BODY_TIMEOUT = env.float("KVS_HTTP_BODY_TIMEOUT", default=20.0)
# Seconds a connection may take to deliver a request line and headers, counted from its opening
# or from the first byte of a later request on it; later: closed (with a 408 if part of a
# request came). Shorter: stalled connections are let go sooner; longer: tolerates very slow
# links (a header block is usually one packet).
KVS_HTTP_HEADER_TIMEOUT = env.float("KVS_HTTP_HEADER_TIMEOUT", default=5.0)
# Largest request line plus header block in bytes, and most header fields per request; beyond
# either: 431 and the connection closed. Larger: room for big cookies or many proxy headers;
# each pending header block costs up to this much memory.
KVS_HTTP_MAX_HEADER_BYTES = env.int("KVS_HTTP_MAX_HEADER_BYTES", default=64 * 1024)
KVS_HTTP_MAX_HEADERS = env.int("KVS_HTTP_MAX_HEADERS", default=100)
# Seconds an answer may wait on a client that reads none of it (the send buffer full) before
# the connection is dropped. Shorter: a client that stops reading holds its answer's memory for
# less time; longer: tolerates clients that pause while downloading a large answer.
KVS_HTTP_SEND_TIMEOUT = env.float("KVS_HTTP_SEND_TIMEOUT", default=30.0)
# Not a knob: `kvs serve` sets it for its web workers (the machine's monotonic clock when the
# web server started), so that `uptime_s` is the node's whichever worker answers (kvsite/uptime.py).
KVS_SERVER_STARTED = env.float("KVS_SERVER_STARTED", default=None)

# --- End of HTTP edge ----------------------------------------------------------------------------

REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")

CACHES = {
    "default": {
        "BACKEND": "kvsite.cache.SharedRedisCache",
        "LOCATION": REDIS_URL,
        # A lost or frozen Redis fails a request within seconds (a 503), never hangs it.
        "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
    }
}
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
WHITENOISE_USE_FINDERS = True

# Request bodies larger than this are refused with 413 before they are read whole: room for a value
# (the key API answers 413 past KVS_MAX_VALUE_BYTES itself) and for replication batches.
DATA_UPLOAD_MAX_MEMORY_SIZE = max(2 * KVS_MAX_VALUE_BYTES, KVS_PUSH_BATCH_BYTES) + 256 * 1024

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.permissions.IsAuthenticatedOrAuthOff"],
    "DEFAULT_RENDERER_CLASSES": [
        "kvsite.renderers.FastJSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    # Bodies are JSON whatever their Content-Type (kvsite.negotiation picks this one parser).
    "DEFAULT_PARSER_CLASSES": ["kvsite.parsers.JSONParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "kvsite.negotiation.FastContentNegotiation",
    "EXCEPTION_HANDLER": "kvsite.exceptions.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": [
        "kvsite.throttling.AnonThrottle",
        "kvsite.throttling.UserThrottle",
    ],
    "DEFAULT_SCHEMA_CLASS": "kvsite.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # Throttles count clients by REMOTE_ADDR alone, never by an X-Forwarded-For header a client
    # can write itself. Behind a reverse proxy the web server sets REMOTE_ADDR from the proxy's
    # header (uvicorn trusts it from FORWARDED_ALLOW_IPS, 127.0.0.1 by default).
    "NUM_PROXIES": 0,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "kvsite API",
    "DESCRIPTION": "A distributed, eventually consistent JSON key-value store.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "DEFAULT_GENERATOR_CLASS": "kvsite.openapi.SchemaGenerator",
}

# --- Celery --------------------------------------------------------------------------------------

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE = {
    "entries-expire": {"task": "kv.tasks.entries_expire", "schedule": KVS_EXPIRY_INTERVAL},
    "tombstones-purge": {"task": "kv.tasks.tombstones_purge", "schedule": KVS_PURGE_INTERVAL},
    # A round that could not start within one interval is superseded by the next: let it expire.
    "gossip-round": {
        "task": "cluster.tasks.gossip_round",
        "schedule": KVS_GOSSIP_INTERVAL,
        "options": {"expires": KVS_GOSSIP_INTERVAL},
    },
    "anti-entropy": {
        "task": "cluster.tasks.anti_entropy_round",
        "schedule": KVS_ANTI_ENTROPY_INTERVAL,
        "options": {"expires": KVS_ANTI_ENTROPY_INTERVAL},
    },
}
if KVS_PUSH_INTERVAL > 0:
    CELERY_BEAT_SCHEDULE["replicate-push"] = {
        "task": "cluster.tasks.replicate_push_all",
        "schedule": KVS_PUSH_INTERVAL,
        "options": {"expires": KVS_PUSH_INTERVAL},
    }
_backup_schedule = schedule_parse(KVS_BACKUP_SCHEDULE)
if _backup_schedule is not None:
    CELERY_BEAT_SCHEDULE["backup-scheduled"] = {
        "task": "backups.tasks.backup_scheduled",
        "schedule": _backup_schedule,
        "options": {"expires": 600},  # a backup that could not start in 10 min waits for the next
    }
if KVS_AUDIT_RETENTION_DAYS > 0:
    CELERY_BEAT_SCHEDULE["audit-prune"] = {
        "task": "audit.tasks.audit_prune",
        "schedule": 3600.0,
        "options": {"expires": 3600},
    }
# Periodic tasks that are late are worthless: drop them rather than run a backlog.
CELERY_TASK_DEFAULT_EXPIRES = 30

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("KVS_LOG_LEVEL", default="WARNING")},
    # 4xx answers are the API working as designed; log only server errors.
    "loggers": {"django.request": {"level": "ERROR"}},
}

# --- Realtime (watch and pub/sub websockets) -----------------------------------------------------

# The pub/sub app; it also switches on watch announcements in every process (web and Celery).
INSTALLED_APPS += ["pubsub"]
# Frames a socket may have waiting to be sent. Larger: a subscriber may lag further behind before
# pub/sub messages are dropped for it (it is then sent {"type": "overflow", "dropped": n}); a watch
# socket never drops, it pauses reading the change feed instead. Costs up to this many frames of
# memory per slow socket.
KVS_WS_SEND_QUEUE = env.int("KVS_WS_SEND_QUEUE", default=1000)
# Seconds between keep-alive comments on a quiet server-sent-events watch: shorter finds a gone
# client (and keeps proxies from timing the stream out) sooner, at one tiny write per stream each.
KVS_SSE_KEEPALIVE = env.float("KVS_SSE_KEEPALIVE", default=15.0)
# Seconds a process gathers applied entries before announcing them to watchers in one message.
# Longer: fewer channel-layer messages under heavy writes; each watch event arrives that much later.
KVS_WATCH_BATCH_DELAY = env.float("KVS_WATCH_BATCH_DELAY", default=0.002)
# Largest pub/sub message (bytes of its JSON frame); larger publishes answer 413.
KVS_PUBSUB_MAX_BYTES = env.int("KVS_PUBSUB_MAX_BYTES", default=256 * 1024)
# Seconds a node remembers the ids of messages it delivered, so that a second copy (a retried
# forward) is dropped. Longer: more ids kept in Redis.
KVS_PUBSUB_DEDUPE_SECONDS = env.int("KVS_PUBSUB_DEDUPE_SECONDS", default=300)
# Seconds a forward to a peer may take; a failed forward is tried once more, then given up.
KVS_PUBSUB_FORWARD_TIMEOUT = env.float("KVS_PUBSUB_FORWARD_TIMEOUT", default=1.0)
# Seconds a peer's outbox gathers messages before posting them: one post per peer per this long
# at most, whatever the publish rate (at 100 messages/s and 0.02 s, one post carries two).
KVS_PUBSUB_FORWARD_GATHER = env.float("KVS_PUBSUB_FORWARD_GATHER", default=0.02)
# Seconds a cluster-wide view (the topic list's subscriber counts) waits for the live peers, asked
# all at once; those that have not answered by then are named in its `unreachable`. Shorter: a
# frozen or overloaded peer delays the answer less, but a merely busy one is left out more often.
KVS_GATHER_TIMEOUT = env.float("KVS_GATHER_TIMEOUT", default=1.0)
# Messages waiting per peer while it is slow or down (the oldest are dropped beyond this).
KVS_PUBSUB_FORWARD_QUEUE = env.int("KVS_PUBSUB_FORWARD_QUEUE", default=10_000)
# Channel layer: Redis PUB/SUB (channels_redis.pubsub) rather than the list-based core layer
# declared above. A group send is one PUBLISH; each process subscribes once per group and hands
# the message to its own sockets. Measured on the pub/sub fan-out bench (docs/realtime.md): about
# 90 us of server CPU per delivered frame against about 220 us, and the core layer, which pops
# every message with four sequential Redis round trips per process, fell behind at 10,000
# deliveries a second. PUB/SUB keeps nothing for an absent process (at most once) and has no
# `capacity`: the bound is each socket's send queue (KVS_WS_SEND_QUEUE), and consumers never
# block in a group handler, so the layer's in-process queues stay short. The read timeout must
# outlast blocking reads: redis-py's default (5 s) aborts them.
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 30}]},
    }
}

# --- End of Realtime -----------------------------------------------------------------------------

# --- Queries on values ---------------------------------------------------------------------------

INSTALLED_APPS += ["query"]
# Seconds between sweeps that build declared indexes still marked `building` (a build is also
# started right after an index is declared or arrives from a peer; the sweep catches a build
# that a restart interrupted).
KVS_INDEX_SWEEP_INTERVAL = env.float("KVS_INDEX_SWEEP_INTERVAL", default=5.0)
# KVS_INDEX_BUILD_ON_COMMIT=false: declared indexes are built only by the sweep (unit tests build
# them by calling query.services.index_build).
KVS_INDEX_BUILD_ON_COMMIT = env.bool("KVS_INDEX_BUILD_ON_COMMIT", default=True)
CELERY_BEAT_SCHEDULE["index-build-sweep"] = {
    "task": "query.tasks.indexes_build_pending",
    "schedule": KVS_INDEX_SWEEP_INTERVAL,
    "options": {"expires": KVS_INDEX_SWEEP_INTERVAL},
}

# --- End of Queries on values --------------------------------------------------------------------
