"""`make demo`: realistic traffic from many departments and the public portal into a running
platform, at a chosen rate, with a progress bar, a summary, the consumer groups' drain time and
the services' memory. `traffic` builds the requests (pure), `runner` sends them."""
