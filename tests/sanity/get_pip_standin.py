# Stand-in for the get-pip.py that ansible-test downloads from a site this network cannot reach.
# ansible-test runs this file as __main__ with sys.argv = [script, <pip install arguments>]:
# bootstrap pip from the interpreter's bundled wheel, then install what ansible-test asked for.
import ensurepip
import os
import subprocess
import sys


def main():
    ensurepip.bootstrap(upgrade=True)
    # ensurepip points PIP_CONFIG_FILE at /dev/null, which hides the machine's pip configuration
    # (certificates, index) from the next pip call.
    os.environ.pop('PIP_CONFIG_FILE', None)
    args = [a for a in sys.argv[1:] if a not in ('--no-setuptools', '--no-wheel')]
    if args:
        subprocess.check_call([sys.executable, '-m', 'pip', 'install'] + args)


if __name__ == '__main__':
    main()
