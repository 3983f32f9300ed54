"""The random per-host body that the responder serves at the self-check path."""

from __future__ import annotations

import secrets

import redis

from service.redis_keys import SELF_CHECK_BODY_TTL_SECONDS, RedisKeys


def ensure_self_check_body(client: redis.Redis, keys: RedisKeys, hostname: str) -> str:
    """Return the host's self-check body, creating one if Redis has none, and renew its TTL.

    SET NX keeps the body that another process created first, so the responder, the
    api and every worker compare against the same value. Raises redis.RedisError.
    """
    key = keys.self_check_body(hostname)
    with client.pipeline(transaction=True) as pipeline:
        pipeline.set(key, secrets.token_urlsafe(32), nx=True, ex=SELF_CHECK_BODY_TTL_SECONDS)
        pipeline.expire(key, SELF_CHECK_BODY_TTL_SECONDS)
        pipeline.get(key)
        _, _, body = pipeline.execute()
    return body.decode("ascii")
