"""Password rules: a weak password is refused with one French sentence that says why.

NIST SP 800-63B's approach: a minimum length, no composition rules, and a check against
passwords an attacker tries first (repeated characters, the account's own e-mail, a short
list of the most common French and English passwords). Administrators, who can create and
unlock accounts, need a longer one.
"""
from __future__ import annotations

import re

MIN_LENGTH = 10
MIN_LENGTH_ADMIN = 12
MAX_LENGTH = 256          # argon2 hashes anything, but a 1 MB "password" is an attack
MIN_DISTINCT = 4

# most used passwords in French and English leaks, lower-cased and without separators
COMMON = frozenset("""
motdepasse motdepasse1 motdepasse123 motdepassesecret monmotdepasse azerty azertyuiop
azerty123 azerty1234 azertyuiop123 qwerty qwertyuiop qwerty123 password password1 password123
passw0rd motdepass 1234567890 0123456789 12345678910 123456789a 1q2w3e4r5t 1qaz2wsx3edc
iloveyou soleil soleil123 bonjour bonjour123 bonjour1234 doudou loulou chouchou marseille
jetaime jetaime123 celine nicolas camille princesse football football123 administrateur
administrator admin12345 admin123456 changeme changezmoi welcome welcome123 letmein
letmein123 dreets dreets2026 spsti spsti2026 travail travail123 sante santetravail
""".split())


class WeakPassword(ValueError):
    """The password breaks a rule; the message is for the person choosing it."""


def _bare(text: str) -> str:
    return re.sub(r"[\W_]+", "", text.casefold())


def check_password(password: str, *, email: str = "", role: str = "") -> None:
    """Raise :class:`WeakPassword` when ``password`` is too weak for this account."""
    minimum = MIN_LENGTH_ADMIN if role == "admin" else MIN_LENGTH
    if not password.strip():
        raise WeakPassword("mot de passe refusé : il ne peut pas être vide ou fait seulement d'espaces")
    if len(password) < minimum:
        who = " pour un administrateur" if role == "admin" else ""
        raise WeakPassword(f"mot de passe trop court : {minimum} caractères au moins{who}")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"mot de passe trop long : {MAX_LENGTH} caractères au plus")
    if len(set(password.casefold())) < MIN_DISTINCT:
        raise WeakPassword(f"mot de passe trop répétitif : il doit contenir au moins {MIN_DISTINCT} "
                           f"caractères différents")
    email = email.strip().casefold()
    local = email.split("@", 1)[0]
    bare = _bare(password)
    if email and (password.strip().casefold() == email or email in password.casefold()
                  or (local and bare == _bare(local))):
        raise WeakPassword("mot de passe refusé : il ne doit pas reprendre l'adresse électronique du compte")
    if bare in COMMON or password.strip().casefold() in COMMON:
        raise WeakPassword("mot de passe refusé : il fait partie des mots de passe les plus courants")
