# pytest configuration for didfs integration tests.
# Shared fixtures live in tests/env/ as plugins so each area owns its own:
#   tests/env/rsefixture.py  - real XRootD storage elements on loopback
#   tests/env/catfixture.py  - temporary catalogs and the didfs command
#   tests/env/mountfixture.py - FUSE mounts of a catalog
#   tests/env/servefixture.py - `didfs serve` over https with a test PKI
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "env"))

pytest_plugins = [m for m in ("catfixture", "rsefixture", "mountfixture", "servefixture")
                  if os.path.exists(os.path.join(HERE, "..", "env", m + ".py"))]
