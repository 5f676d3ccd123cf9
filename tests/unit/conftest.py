"""Unit tests import the collection as ansible_collections.genai.stack.

.collections/ansible_collections/genai/stack is a symlink to the checkout, so putting
.collections on sys.path is all the collection loader needs.
"""
import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
sys.path.insert(0, os.path.join(ROOT, '.collections'))
