"""The client side: what users import (re-exported by ``raykafka``)."""
