"""pynetbox, unchanged, against a real NetBox 4.7 (run by netbox_clients.rs).

The environment names the NetBox and what the Rust side made there: NB_URL, NB_ADMIN (a
superuser's v2 token), NB_V1 (a superuser's v1 token), NB_RO (a read-only v2 token),
NB_USER_ID (a user whose tokens this script makes and lists), NB_TAG (unique descriptions).
Prints one line per check and exits non-zero on the first failure.
"""
import os

import pynetbox

from pycheck import check


url, admin, v1, ro = os.environ["NB_URL"], os.environ["NB_ADMIN"], os.environ["NB_V1"], os.environ["NB_RO"]
user_id, tag = int(os.environ["NB_USER_ID"]), os.environ["NB_TAG"]

nb = pynetbox.api(url, token=admin)
check("nb.version reads API-Version 4.7", nb.version == "4.7", nb.version)
check("nb.status() names NetBox 4.7.3", nb.status().get("netbox-version", "").startswith("4.7.3"), nb.status())

# More than one page: five tokens, two a page.
made = [nb.users.tokens.create(user=user_id, description=f"{tag}-{i}") for i in range(5)]
check("tokens.create returns each secret once", all(isinstance(t.token, str) and len(t.token) == 40 for t in made))
listed = list(nb.users.tokens.filter(user_id=user_id, limit=2))
check("filter(limit=2) follows next links over 3 pages", sorted(t.id for t in listed) == sorted(t.id for t in made),
      [t.id for t in listed])

# Create, update, delete.
new = nb.users.tokens.create(user=user_id, description=f"{tag}-crud", write_enabled=True)
check("a created v2 token has a key and secret", new.version == 2 and len(new.key) == 12)
fetched = nb.users.tokens.get(new.id)
check("the secret is not returned again", getattr(fetched, "token", None) is None)
fetched.description = f"{tag}-changed"
fetched.write_enabled = False
check("record.save() returns True", fetched.save() is True)
again = nb.users.tokens.get(new.id)
check("save() persisted", again.description == f"{tag}-changed" and again.write_enabled is False, dict(again))
nb_new = pynetbox.api(url, token=f"nbt_{new.key}.{new.token}")
check("the created token authenticates (Bearer)", nb_new.users.tokens.get(new.id).id == new.id)
check("record.delete() returns True", again.delete() is True)
check("a deleted token is gone", nb.users.tokens.get(new.id) is None)

# v1: pynetbox sends `Token <plaintext>`.
nb_v1 = pynetbox.api(url, token=v1)
check("a v1 token lists tokens", len(list(nb_v1.users.tokens.filter(user_id=user_id))) == 5)

# A read-only token reads and is refused on write with NetBox's detail.
nb_ro = pynetbox.api(url, token=ro)
check("a read-only token reads", len(list(nb_ro.users.tokens.filter(user_id=user_id))) == 5)
try:
    nb_ro.users.tokens.create(user=user_id, description=f"{tag}-refused")
    check("a read-only token is refused on write", False)
except pynetbox.RequestError as e:
    check("a read-only token is refused on write", e.req.status_code == 403
          and "You do not have permission to perform this action." in str(e.error), e.error)

bad = pynetbox.api(url, token="nbt_AAAAAAAAAAAA." + "b" * 40)
try:
    next(iter(bad.users.tokens.all()))
    check("a bad token is refused", False)
except pynetbox.RequestError as e:
    check("a bad token is refused with NetBox's detail", e.req.status_code == 403 and "Invalid v2 token" in str(e.error),
          e.error)

print("pynetbox against NetBox: all checks passed")
