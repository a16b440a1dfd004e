"""The policy profiles shipped with the project, one TOML file per agency.

``usc_dps``, ``south_pasadena_pd``, ``claremont_pd``, ``lapd`` and ``lasd`` come from the five
policies the requirements cite; every value's comment names the policy section it comes from.
The schema is documented in `node.profile`; find them with `node.profile.builtin_profiles`.
"""
