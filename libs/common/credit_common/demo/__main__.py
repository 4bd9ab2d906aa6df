"""`python -m credit_common.demo --rate 200 --minutes 10 [--seed N]`."""

from credit_common.demo.runner import main

main()
