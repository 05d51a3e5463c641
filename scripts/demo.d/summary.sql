SELECT (SELECT count(*) FROM package) AS packages,
       (SELECT count(*) FROM license) AS licenses,
       (SELECT count(*) FROM package_license) AS links;
