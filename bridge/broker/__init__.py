"""Tooling for the production Mosquitto brokers: `bridge broker ...`.

One job per module:

    cli        the `bridge broker` subcommands: register, call, print
    parser     their arguments and help texts
    ca         a development CA, server and client certificates (openssl CLI)
    accounts   device ids as MQTT usernames; generated passwords
    passwd     the password file, through mosquitto_passwd
    acl        the ACL file's managed gateway entries
    gate       the login gate of the device listener (open, close, wait for the bridge)
    reload     SIGHUP to the broker named by its pid file
    render     the cloud and edge configs, from the templates in mosquitto/
    check      a config's files and folders, checked before the broker starts
    tools      finding and running external programs, with clear errors
    files      atomic writes and symbolic links

Every error the user can act on is a BrokerError, printed by the CLI as one
message without a traceback.
"""
