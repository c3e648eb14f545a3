"""pynetbox, unchanged, against a running `nbtoken serve`.

Every call here works against a real NetBox 4.6; it must work against nbtoken.
Arguments come from the environment: NB_URL, NB_USER, NB_PASSWORD.
Prints one line per check and exits non-zero on the first failure.
"""
import os

import pynetbox
import requests

from pycheck import check


url, user, password = os.environ["NB_URL"], os.environ["NB_USER"], os.environ["NB_PASSWORD"]
nb = pynetbox.api(url)

tok = nb.create_token(user, password)
check("create_token returns a v2 token record", tok.version == 2 and len(tok.key) == 12, repr(dict(tok)))
check("create_token stores the full nbt_ value", nb.token == f"nbt_{tok.key}.{tok.token}")

check("nb.version reads API-Version", nb.version == "4.7", nb.version)
status = nb.status()
check("nb.status() is a dict with netbox-version", isinstance(status, dict) and "netbox-version" in status, status)

me = nb.users.users.get(username=user)
check("users.get(username=...) finds the user", me is not None and me.username == user and me.id > 0)

all_tokens = list(nb.users.tokens.all())
check("tokens.all() lists the provisioned token", any(t.id == tok.id for t in all_tokens), len(all_tokens))

new = nb.users.tokens.create(user=me.id, description="made by pynetbox")
check("tokens.create returns the secret once", isinstance(new.token, str) and len(new.token) == 40)
check("tokens.create sets fields", new.description == "made by pynetbox" and new.user.id == me.id)

fetched = nb.users.tokens.get(new.id)
check("the secret is not returned again", getattr(fetched, "token", None) is None)

# The new token authenticates as itself, with the header pynetbox picks.
nb2 = pynetbox.api(url, token=f"nbt_{new.key}.{new.token}")
check("a created token authenticates", nb2.users.tokens.get(new.id).id == new.id)

fetched.description = "changed by save()"
fetched.write_enabled = False
check("record.save() returns True", fetched.save() is True)
again = nb.users.tokens.get(new.id)
check("save() persisted", again.description == "changed by save()" and again.write_enabled is False)

# pynetbox reports server errors with NetBox's detail text.
try:
    nb2.users.tokens.create(description="read-only token must not write")
    check("read-only token refused for POST", False)
except pynetbox.RequestError as e:
    check("read-only token refused for POST", e.req.status_code == 403, e.error)

check("record.delete() returns True", again.delete() is True)
check("deleted token is gone", nb.users.tokens.get(new.id) is None)

# filter() with pagination follows `next` links.
for i in range(7):
    nb.users.tokens.create(user=me.id, description=f"bulk-{i}")
nb_small = pynetbox.api(url, token=nb.token)
listed = list(nb_small.users.tokens.all(limit=3))
check("all(limit=3) follows next links", len(listed) == len(list(nb.users.tokens.all())), len(listed))

bad = pynetbox.api(url, token="nbt_AAAAAAAAAAAA." + "b" * 40)
try:
    bad.users.tokens.all().__iter__().__next__()
    check("bad token refused", False)
except pynetbox.RequestError as e:
    check("bad token refused with NetBox's detail", e.req.status_code == 403 and "Invalid v2 token" in str(e.error), e.error)

print("pynetbox: all checks passed")
