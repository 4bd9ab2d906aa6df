"""`python -m credit_demo --rate 200 --minutes 10 [--seed N]`."""

from credit_demo.runner import main

main()
